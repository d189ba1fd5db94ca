"""Built-in deployment profiles (TOML files beside this module); planner.profiles loads and validates them."""
