complete --keep-order --exclusive --command mycli --arguments "(COMPLETE=fish mycli -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
