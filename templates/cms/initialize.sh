# initialize (the primary only): then wait until the console itself says
# "Connected Primary" before dbpki checks it through libpq.
run database cluster initialize
run database cluster status
  expect {{!address}} (me) : Connected Primary
  until 120
