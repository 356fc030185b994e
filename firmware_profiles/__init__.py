"""Firmware profiles: data only, one TOML file per vendor/firmware variant (see hallctl.profiles)."""
