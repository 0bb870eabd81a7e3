/* libmath.a(counter.o): a real definition of main.o's COMMON shared_counter;
 * a COMMON does not pull it. */
int shared_counter = 42;
