#!/bin/sh
# test template for tests/unit/test_template.c
printf '%s\n' {{node}}
port={{!port}}
