# certs: point the console at the files dbpki just uploaded into its file
# area (a fresh name per release), then choose the clustering interface.
# Database cores get five files, cores without a database three (Cisco's
# guide, "database cluster certs").  Edit `localnode a` if your cores
# cluster over another interface.
only database
run database cluster certs {{!server_key}} {{!server_crt}} {{!client_key}} {{!client_crt}} {{!ca_crt}}
only client
run database cluster certs {{!client_key}} {{!client_crt}} {{!ca_crt}}
only all
run database cluster localnode a
run database cluster status
  expect Interface : a
  expect Client Certificate : {{!client_crt}}
