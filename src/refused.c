/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "refused.h"
#include "xmalloc.h"

struct uidmap *
refused_load(const char *dir, const char *account)
{
	struct uidmap *m = uidmap_new();
	char *path = xasprintf("%s/%s.refused", dir, account);
	char line[UID_MAX + 3];
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "re")) != NULL) {
		while (fgets(line, sizeof(line), fp) != NULL) {
			n = strcspn(line, "\n");
			line[n] = '\0';
			if (uid_valid(line, n))
				(void)uidmap_put(m, line, 0);
		}
		(void)fclose(fp);	/* read-only */
	}
	free(path);
	return m;
}

int
refused_save(const char *dir, const char *account, const struct uidmap *m,
    struct err *e)
{
	char *path = xasprintf("%s/%s.refused", dir, account);
	char *tmp = xasprintf("%s.tmp", path);
	struct uidmap_entry *en;
	size_t pos = 0;
	FILE *fp;
	int rc = -1;

	if (uidmap_count(m) == 0) {
		if (unlink(path) == -1 && errno != ENOENT)
			err_set(e, EX_IOERR, "cannot remove %s: %s", path,
			    strerror(errno));
		else
			rc = 0;
		goto out;
	}
	if ((fp = fopen(tmp, "we")) == NULL) {
		err_set(e, EX_IOERR, "cannot create %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	while ((en = uidmap_next(m, &pos)) != NULL)
		fprintf(fp, "%s\n", en->uid);
	if (fflush(fp) == EOF || fsync(fileno(fp)) == -1) {
		err_set(e, EX_IOERR, "cannot write %s: %s", tmp,
		    strerror(errno));
		(void)fclose(fp);	/* already failed */
		(void)unlink(tmp);
		goto out;
	}
	if (fclose(fp) == EOF || rename(tmp, path) == -1) {
		err_set(e, EX_IOERR, "cannot write %s: %s", path,
		    strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(path);
	free(tmp);
	return rc;
}
