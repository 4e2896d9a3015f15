"""plane_profile: tail numbers and plausible aircraft attributes."""

import great_expectations.expectations as gxe

from ..bounds import ENGINE_TYPES, ENGINES, SEATS, TAIL_NUMBER, YEAR_BUILT


def expectations(target):
    return [
        gxe.ExpectColumnValuesToMatchRegex(column="tailnum", regex=TAIL_NUMBER),
        gxe.ExpectColumnValuesToBeBetween(column="year_built", min_value=YEAR_BUILT[0], max_value=YEAR_BUILT[1]),
        gxe.ExpectColumnValuesToBeBetween(column="seats", min_value=SEATS[0], max_value=SEATS[1]),
        gxe.ExpectColumnValuesToBeInSet(column="engines", value_set=ENGINES),
        gxe.ExpectColumnValuesToBeInSet(column="engine_type", value_set=ENGINE_TYPES),
    ]
