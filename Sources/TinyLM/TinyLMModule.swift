// TinyLM layer (being written)
