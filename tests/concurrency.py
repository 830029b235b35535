"""Runs a function in several threads at once, each with its own database connection, for race tests."""
import threading
from collections.abc import Callable

from django.db import connections


def run_at_once(function: Callable, arguments: list[tuple]) -> tuple[list, list[Exception]]:
    """Start every call together (a barrier) and return their results and the exceptions they raised."""
    barrier = threading.Barrier(len(arguments))
    results: list = []
    errors: list[Exception] = []

    def run(args: tuple) -> None:
        try:
            barrier.wait()
            results.append(function(*args))
        except Exception as error:  # collected for the test to assert on
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(args,)) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors
