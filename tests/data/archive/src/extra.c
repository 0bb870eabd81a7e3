/* extra.c: a second command-line object. */
int extra_value = 5;
