// ShardFormat layer (being written)
