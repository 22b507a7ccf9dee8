# snapshot (rotate, database cores, before anything changes): Cisco's TAC
# procedure for expired database certificates takes a backup first.
run backup snapshot {{!snapshot}}
  expect {{!snapshot}}.bak
