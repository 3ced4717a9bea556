"""jinja2 templates shipped inside the wheel (one directory per output kind)."""
