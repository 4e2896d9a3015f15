{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='flight_id',
        partition_by=['flight_date'],
        incremental_predicates=interval_predicates('flight_date'),
    )
}}

with source as (

    select * from {{ source('nycflights', 'flights') }}
    {{ interval_filter('flight_date') }}

),

renamed as (

    select
        flight_id,
        flight_date,
        carrier,
        cast(flight as int) as flight_number,
        tailnum,
        origin,
        dest,
        sched_dep_ts,
        dep_ts,
        sched_arr_ts,
        arr_ts,
        dep_delay,
        arr_delay,
        air_time,
        distance,
        cancelled,
        arr_ts is null and not cancelled as diverted,
        case when arr_delay is null then null when arr_delay > 15 then 1 else 0 end as arrived_late
    from source

)

select * from renamed
