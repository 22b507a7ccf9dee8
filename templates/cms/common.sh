# dbpki console library for the cms platform (templates/cms/common.sh).
#
# NOT a shell script: a console script for the MMP console of a Cisco
# Meeting Server core (syntax: docs/cms.md).  dbpki reads this file, then
# templates/cms/<action>.sh; it types each `run` line at the console, one
# at a time, and judges the reply before it types the next one.  Values
# come only from the verbatim slots (a console word: [A-Za-z0-9_./:,@+-]).

# The MMP prompt: the core's name followed by '>'.
prompt >

# The console's failure texts: a reply line holding one of them fails the
# step on that core, and nothing after it is typed.  With the colon: the
# status line "Last command : '...' (Failure)" reports an earlier command
# and must not fail the status query itself.
fail Failure:
fail Error:
fail Unknown command
