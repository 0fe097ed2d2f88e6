#!/usr/bin/env bash
# `make demo`: a throwaway cluster with a small sample shop (shop.sql: codes, links,
# sign-ups and chains), then 90 days of a seeded shop and the analysts' views
# (analytics.sql), a checkout with a referee's discount and store credit
# (checkout.sql), and an operator's day (operations.sql: a suspicious referral
# held and released, a payout batch), printed as psql tables.
set -euo pipefail
cd "$(dirname "$0")"

if [ -z "${REFERRAL_IN_CLUSTER:-}" ]; then
	exec pg_virtualenv -t env REFERRAL_IN_CLUSTER=1 bash "$PWD/demo.sh" "$@"
fi
psql -qX -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS referral_demo' -c 'CREATE DATABASE referral_demo' postgres
psql -X -v ON_ERROR_STOP=1 --pset=footer=off -d referral_demo -f shop.sql
psql -X -v ON_ERROR_STOP=1 --pset=footer=off -d referral_demo -f analytics.sql
psql -X -v ON_ERROR_STOP=1 --pset=footer=off -d referral_demo -f checkout.sql
psql -X -v ON_ERROR_STOP=1 --pset=footer=off -d referral_demo -f operations.sql
