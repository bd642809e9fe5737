/*
 * driver.c - the real IMAP driver: scheduler/driver.h's operations table
 * filled with prober/imap.h's functions, member for member.
 */
#include <config.h>

#include "prober/imap_notify.h"
#include "scheduler/driver.h"

const struct imap_driver imap_driver_real = {
	.open = imap_open,
	.close = imap_close,
	.close_now = imap_close_now,
	.rebind = imap_rebind,
	.noop = imap_noop,
	.extend = imap_extend,
	.has_capability = imap_has_capability,
	.usable = imap_usable,
	.selected = imap_selected,
	.list_folders = imap_list_folders,
	.select_uidnext = imap_select_uidnext,
	.status_uidnext = imap_status_uidnext,
	.idle_start = imap_idle_start,
	.idling = imap_idling,
	.idle_wait = imap_idle_wait,
	.idle_read = imap_idle_read,
	.idle_fd = imap_idle_fd,
	.idle_exists = imap_idle_exists,
	.exists_expunged = imap_exists_expunged,
	.idle_done = imap_idle_done,
	.rx_time = imap_rx_time,
	.notify_set = imap_notify_set,
	.notify_set_uidnext = imap_notify_set_uidnext,
	.notify_mailbox = imap_notify_mailbox,
	.notify_announced = imap_notify_announced,
	.uidvalidity_seen = imap_uidvalidity_seen,
	.find_new_tokens = imap_find_new_tokens,
	.fetch_header = imap_fetch_header,
	.gmail_tab = imap_gmail_tab,
	.cleanup = imap_cleanup,
	.scan_bounces = imap_scan_bounces,
};

double driver_rx_time(const struct imap_driver *drv, const struct imap_session *s, int what,
                      double fallback)
{
	double t = drv->rx_time != NULL && s != NULL ? drv->rx_time(s, what) : 0;

	return t > 0 ? t : fallback;
}
