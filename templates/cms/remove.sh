# remove (bootstrap: all cores; rotate: replicas and clients, then the
# primary).  The status first, so that the journal records who was primary
# before the cluster went away; then remove, which asks for a capital Y.
# A core keeps its local database (the lab emulator renames a replica's
# copy aside, never deletes it).
run database cluster status
run database cluster remove
  confirm (Y/n) Y
  fail Aborted
run database cluster status
  expect Status : Disabled
