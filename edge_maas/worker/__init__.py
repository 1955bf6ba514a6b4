"""Cloud workers that run offloaded pipeline stages for devices."""
