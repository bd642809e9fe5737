/* model.c - names for the shared data model (see model.h). */
#include <config.h>

#include <string.h>

#include "common/model.h"

static const char *const outcome_names[OUTCOME__COUNT] = {
	"inbox", "spam", "missing", "rejected", "deferred", "error"
};

const char *outcome_name(enum outcome o)
{
	if ((int)o < 0 || o >= OUTCOME__COUNT)
		return "unknown";
	return outcome_names[o];
}

int outcome_from_name(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < OUTCOME__COUNT; i++)
		if (strcmp(name, outcome_names[i]) == 0)
			return i;
	return -1;
}
