#!/bin/sh
# Patroni's post_bootstrap on the first primary: the hub's role and
# database. The password goes into each hub node's ~/.pgpass (or
# store_dsn's password=), never into logs. hubd creates its tables itself
# (store_migrate = yes) or `hubctl store init` does.
set -e
psql -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
CREATE ROLE lienthong LOGIN PASSWORD 'CHANGE-ME-hub';
CREATE DATABASE lienthong OWNER lienthong;
SQL
