"""One module per runtime command; each has add_arguments(parser) and run(args, ctx)."""
