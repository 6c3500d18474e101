"""Asking about imagery: what a question means, answers for a region tile by tile, and find
similar (search a raster's tiles by example or by words)."""
