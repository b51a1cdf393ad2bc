from helper import greet

__all__ = ["NAME", "greet"]
NAME = "app"
