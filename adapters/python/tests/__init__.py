"""Tests of the Python client; run by ctest as python_client."""
