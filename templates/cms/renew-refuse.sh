# renew on CMS: the console has no way dbpki knows to switch the database
# certificates of a running cluster (`database cluster certs` takes effect
# when a core initializes or joins), so a renewal without downtime is not
# possible.  Refuse before anything is uploaded or typed.
refuse Cisco Meeting Server cannot switch database certificates without re-forming the cluster; run `dbpki rotate -c INVENTORY` in a maintenance window instead (docs/cms.md)
