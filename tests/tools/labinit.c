/* labinit: PID 1 of a netlab node (tests/lab/netlab.sh).
 *
 *   labinit BOOT [ARG...]
 *
 * Runs BOOT (the node's boot sequence) as its child, then reaps every
 * process that ends up as its child, for ever: daemons that double-fork
 * (sshd, the postmaster started through pg_ctl) are re-parented to PID 1
 * of their PID namespace, and without a reaper they would stay zombies.
 *
 * It never exits by itself and handles no signal: the lab powers the node
 * off with SIGKILL from the parent namespace (the only signal that reaches
 * a namespace's PID 1 without a handler), and the kernel then kills every
 * process of the node at once, as a power loss would.
 *
 * Exit: 2 usage or not PID 1, 1 the boot sequence could not be started.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	sigset_t set;
	pid_t boot;
	int sig;

	if (argc < 2) {
		fprintf(stderr, "usage: labinit BOOT [ARG...]\n");
		return 2;
	}
	if (getpid() != 1) {
		fprintf(stderr, "labinit: not PID 1 of a PID namespace; "
				"start it with unshare --pid --fork\n");
		return 2;
	}
	/* SIGCHLD is blocked and taken with sigwait: no handler, no race
	 * between a check for children and going to sleep. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
		fprintf(stderr, "labinit: sigprocmask: %s\n", strerror(errno));
		return 1;
	}
	boot = fork();
	if (boot < 0) {
		fprintf(stderr, "labinit: fork: %s\n", strerror(errno));
		return 1;
	}
	if (boot == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		execv(argv[1], argv + 1);
		fprintf(stderr, "labinit: %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	for (;;) {
		int status;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid == boot &&
			    (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
				fprintf(stderr,
				    "labinit: boot sequence %s failed "
				    "(status %d)\n",
				    argv[1], status);
		}
		if (sigwait(&set, &sig) != 0) {
			fprintf(stderr, "labinit: sigwait failed\n");
			sleep(1);
		}
	}
}
