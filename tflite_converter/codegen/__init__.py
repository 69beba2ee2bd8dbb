"""C code generation: planned Graph IR -> a self-contained folder of C99."""
