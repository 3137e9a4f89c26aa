"""Edge of chaos (paper §III-A): the initial population at lambda_c and the calibration of lambda_c."""
