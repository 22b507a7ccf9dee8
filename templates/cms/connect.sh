# connect (cores without a database): use the primary's database.
run database cluster connect {{!primary_address}}
run database cluster status
  expect {{!primary_address}} : Connected Primary
  expect {{!address}} (me) : Connected
  until 120
