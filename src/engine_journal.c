/* engine_journal: what happened in a run, durable line by line, so that an
 * interrupted run can be recognised (and resumed or rolled back) later. */
#include "dbpki/engine.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int
engine_journal_open(const char *state_dir, const char *playbook,
    struct engine_journal *j, struct dbpki_err *e)
{
	char dir[CFG_PATH];
	int fd, r;

	memset(j, 0, sizeof(*j));
	if (util_fmt(dir, sizeof(dir), "%s/journal", state_dir) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "%s: path too long", state_dir);
	if ((r = util_mkdirs(dir, UTIL_STORE_DIR, e)) != 0)
		return r;
	/* The newest journal is found by name: the stamp sorts like time
	 * (a pid suffix did not: "-1000" < "-999" within one second). */
	util_stamp(j->id);
	if (util_fmt(j->path, sizeof(j->path), "%s/%s.jsonl", dir, j->id) != 0)
		return err_set(e, DBPKI_E_CONFIG, "%s: path too long", dir);
	fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    UTIL_STORE_LOG);
	if (fd == -1 || fchmod(fd, UTIL_STORE_LOG) == -1 ||
	    (j->f = fdopen(fd, "w")) == NULL) {
		r = err_sys(e, "cannot create the journal %s", j->path);
		if (fd != -1)
			close(fd);
		return r;
	}
	if ((r = util_fsync_dir(dir, e)) != 0)
		return r;
	engine_journal_event(j, "run-start", "playbook", playbook, NULL);
	return 0;
}

void
engine_journal_event(struct engine_journal *j, const char *event, ...)
{
	const char *k, *v;
	char when[32];
	va_list ap;

	if (j->f == NULL)
		return;
	util_iso8601(util_now(), when);
	fprintf(j->f, "{\"t\":\"%s\",\"event\":", when);
	log_json_string(j->f, event);
	va_start(ap, event);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		fputc(',', j->f);
		log_json_string(j->f, k);
		fputc(':', j->f);
		log_json_string(j->f, v ? v : "");
	}
	va_end(ap);
	fputs("}\n", j->f);
	/* Each line must survive a crash of dbpki or of the admin host. */
	if (fflush(j->f) != 0 || fsync(fileno(j->f)) != 0) {
		log_warn("cannot write the journal %s; continuing without it",
		    j->path);
		fclose(j->f);
		j->f = NULL;
	}
}

void
engine_journal_close(struct engine_journal *j, const char *result)
{
	if (j->f == NULL)
		return;
	engine_journal_event(j, "run-end", "result", result, NULL);
	if (j->f != NULL)
		fclose(j->f);
	j->f = NULL;
}

static int
journal_finished(const char *path, char *playbook, size_t pbsz)
{
	char *text = NULL, *p, *q;
	struct dbpki_err e;
	int done;

	if (util_read_file(path, 64 * 1024 * 1024, UTIL_RF_NOSYMLINK, &text,
		NULL, &e) != 0)
		return 1; /* unreadable: nothing we can resume from */
	done = strstr(text, "\"event\":\"run-end\"") != NULL;
	playbook[0] = '\0';
	if ((p = strstr(text, "\"playbook\":\"")) != NULL) {
		p += strlen("\"playbook\":\"");
		if ((q = strchr(p, '"')) != NULL && (size_t)(q - p) < pbsz) {
			memcpy(playbook, p, (size_t)(q - p));
			playbook[q - p] = '\0';
		}
	}
	free(text);
	return done;
}

int
engine_journal_unfinished(
    const char *state_dir, char *id, char *playbook, struct dbpki_err *e)
{
	char dir[CFG_PATH], path[CFG_PATH], newest[CFG_NAME] = "";
	struct dirent *de;
	size_t len;
	DIR *d;

	if (util_fmt(dir, sizeof(dir), "%s/journal", state_dir) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "%s: path too long", state_dir);
	if ((d = opendir(dir)) == NULL)
		return 0;
	/* Only the newest run matters: a later run that ended supersedes an
	 * older interrupted one. */
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len > 6 && len < CFG_NAME &&
		    strcmp(de->d_name + len - 6, ".jsonl") == 0 &&
		    strcmp(de->d_name, newest) > 0)
			memcpy(newest, de->d_name, len + 1);
	}
	closedir(d);
	if (newest[0] == '\0' ||
	    util_fmt(path, sizeof(path), "%s/%s", dir, newest) != 0 ||
	    journal_finished(path, playbook, CFG_NAME))
		return 0;
	newest[strlen(newest) - 6] = '\0';
	memcpy(id, newest, strlen(newest) + 1);
	return 1;
}
