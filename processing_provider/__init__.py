"""Processing provider ``rs_sage``; algorithms import their heavy dependencies lazily."""
