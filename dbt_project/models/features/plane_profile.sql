-- Static aircraft attributes. The registry extract has no change history, so each profile is valid from
-- 1900-01-01: a point-in-time join finds it for every flight.

with planes as (

    select * from {{ ref('stg_nycflights__planes') }}

),

profile as (

    select
        tailnum,
        timestamp'1900-01-01 00:00:00' as valid_from,
        cast(year_built as int) as year_built,
        cast(seats as int) as seats,
        cast(engines as int) as engines,
        manufacturer,
        engine_type
    from planes

)

select * from profile
