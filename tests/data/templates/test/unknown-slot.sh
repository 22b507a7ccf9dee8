#!/bin/sh
# test template with a slot the caller does not set
cd {{pgdata}}
