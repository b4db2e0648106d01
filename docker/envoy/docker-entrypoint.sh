#!/bin/sh
# The official envoyproxy/envoy image starts its command through
# /docker-entrypoint.sh; the compose file does too, so either image runs it.
exec "$@"
