// Optim layer (being written)
