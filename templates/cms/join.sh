# join (database cores that are not the primary): clone the primary's
# database and stream from it; wait until the console says so.
run database cluster join {{!primary_address}}
run database cluster status
  expect {{!primary_address}} : Connected Primary
  expect {{!address}} (me) : Connected Replica
  until 180
