"""Ours, unchanged (``python -m modelops_service``'s own main), with cProfile switched on
by SIGUSR1 and off by SIGUSR2, which writes the profile to BENCH_PROFILE_FILE: the profile
holds the load between the two signals, not the start-up. Both handlers run on the main
thread, the event loop's, which is the one cProfile then profiles.
Usage: BENCH_PROFILE_FILE=out.prof python profiled_service.py --host H --port P
"""

import cProfile
import os
import signal
import sys

from modelops_service.__main__ import main

profiler = cProfile.Profile()


def start(signum, frame):
    profiler.enable()


def stop(signum, frame):
    profiler.disable()
    profiler.dump_stats(os.environ["BENCH_PROFILE_FILE"])


signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
sys.exit(main(sys.argv[1:]))
