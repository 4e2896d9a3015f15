with source as (

    select * from {{ source('nycflights', 'planes') }}

),

renamed as (

    select
        tailnum,
        year as year_built,
        type as aircraft_type,
        manufacturer,
        model,
        engines,
        seats,
        speed as cruise_speed,
        engine as engine_type
    from source

)

select * from renamed
