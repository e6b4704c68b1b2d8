// Replay layer (being written)
