/* libFuzzer target: dbpki's own known_hosts reader (plain, hashed and
 * [host]:port entries) on arbitrary text, looking up a fixed host and key. */
#include "dbpki/ssh.h"

#include <stdint.h>
#include <stdlib.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[] = {0, 0, 0, 11, 's', 's', 'h', '-',
	    'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32, 1, 2, 3, 4, 5, 6, 7,
	    8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
	    25, 26, 27, 28, 29, 30, 31, 32};
	struct ssh_kh_lookup out;

	ssh_kh_lookup(
	    (const char *)data, size, "node1.lab.test", key, sizeof(key), &out);
	ssh_kh_lookup((const char *)data, size, "[127.0.0.1]:2222", key,
	    sizeof(key), &out);
	return 0;
}
