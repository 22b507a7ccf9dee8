# restart (rotate, the former primary): after `remove` and the new `certs`,
# Cisco's TAC procedure brings the former primary back with `database
# cluster initialize`; the core keeps its local database (no data is lost:
# the emulator runs initdb only into an empty data directory).
run database cluster initialize
run database cluster status
  expect {{!address}} (me) : Connected Primary
  until 120
