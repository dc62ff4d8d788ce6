#!/bin/sh
# resp_replay.sh - make check: replays tests/fuzz/resp-corpus through
# tests/fuzz/fuzz_resp.c (plain build, no libFuzzer) with replay.c.
exec ./tests/fuzz/fuzz_resp_replay "${srcdir:-.}/tests/fuzz/resp-corpus"
