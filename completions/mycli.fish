complete --keep-order --exclusive --command mycli --arguments "(_MYCLI_COMPLETE=fish mycli -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
