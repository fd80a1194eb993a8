{
  name = "echo";
  pipelines = [ ./pipeline.nix ];
  parameters = {
    # Each value must reach the script byte for byte (the test reads them back).
    value = [
      "two words"
      "it's \"quoted\" 'twice'"
      "$(touch /tmp/repx-hostile-pwned)"
      "`touch /tmp/repx-hostile-pwned`"
      "first line\nsecond line\n"
      "semi; colon && amp | pipe > redirect"
      "back\\slash \\n \\0"
      "glob * ? [a-z]"
      "  leading and trailing  "
      "-n"
      "dollar $HOME \${HOME}"
      "ünïcödé ✓"
      ""
    ];
  };
}
