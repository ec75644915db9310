/* sinkd: the daemon.  Everything is in the daemon library. */
#include "daemon.h"

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv);
}
