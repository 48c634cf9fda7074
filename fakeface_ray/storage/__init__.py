"""Storage: where outputs live (locations), the Parquet contract (schema), parts committed atomically."""
