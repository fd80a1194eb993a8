{ description = "my-experiment"; outputs = { self }: { }; }
