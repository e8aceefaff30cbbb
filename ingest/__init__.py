"""Turn files into chunks and commit them to an index: parse, chunk, embed, store."""
