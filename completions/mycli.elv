
set edit:completion:arg-completer[mycli] = { |@words|
    var index = (count $words)
    set index = (- $index 1)

    put (env _CLAP_IFS="\n" _CLAP_COMPLETE_INDEX=(to-string $index) _MYCLI_COMPLETE="elvish" mycli -- $@words) | to-lines
}

