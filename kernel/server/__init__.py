"""Network edges of the kernel: the HTTP and gRPC API servers and the app channel."""
