double sq(double x);
