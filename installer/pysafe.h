/*-------------------------------------------------------------------------
 *
 * pysafe.h
 *		What the files of the pysafe shim share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PYSAFE_H
#define PYSAFE_H

#include "nodes/nodes.h"

/* reading.c: the canonical reading of a utility statement's parse tree. */
extern char *pysafe_server_reading(Node *stmt);

#endif							/* PYSAFE_H */
