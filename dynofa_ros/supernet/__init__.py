"""The dynamic network: supernet spec/build, subnet architectures, library, runtime."""
