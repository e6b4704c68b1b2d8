// Catalog layer (being written)
