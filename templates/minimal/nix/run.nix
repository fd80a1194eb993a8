{
  name = "hello";
  pipelines = [ ./pipeline.nix ];
  parameters = {
    who = [ "world" ];
  };
}
